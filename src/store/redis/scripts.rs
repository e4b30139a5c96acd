//! The Lua scripts behind [`RedisStore`](super::RedisStore)'s atomic
//! operations: each runs in one Redis call, so no other client sees a
//! half-done write. Every script touches the record key(s) and user
//! indexes it is given; see the module docs of `store::redis` for the layout.
//! `RedisClusterStore` runs the same insert, replace, touch, remove and
//! purge scripts with one record (and a remove's receipt, in its slot) and no
//! index, plus `LUA_INDEX` on an index alone: each call touches one slot.

/// Lua shared by the scripts. `gt` compares two decimal strings without
/// leading zeros exactly (Lua numbers are doubles and would round a u64).
/// `index` adds the record(s) to user indexes (hashes whose fields are
/// the members, with empty values: small ones are stored compactly): the
/// keys from `first` on are indexes, and ARGV from `base` holds a (member,
/// ttl) pair for each; an index's expiry is only ever raised. `bound`
/// tells whether a stored value is a live record whose bytes after
/// `"a":…,` (auth_at) start with `marker` (its absolute deadline and
/// user).
///
/// The receipted writes (rotate, remove) take their receipt key
/// as KEYS[1] and its time to live as ARGV[1]. `replay` returns the answer
/// a write already gave under that receipt (the caller is retrying after a
/// lost reply), `applied` leaves the receipt with the answer, in the same
/// atomic step as the write. Every write calls `index` (HSET, which fails
/// on a key of another type) before its first SET, so a script that fails
/// has written nothing.
pub(super) const LUA_COMMON: &str = r#"
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local function index(first, base)
  for j = 1, #KEYS - first + 1 do
    local set, member, ttl = KEYS[first + j - 1], ARGV[base + 2 * j - 1], ARGV[base + 2 * j]
    redis.call('HSET', set, member, '')
    if redis.call('PTTL', set) < tonumber(ttl) then
      redis.call('PEXPIRE', set, ttl)
    end
  end
end
local function replay()
  local seen = redis.call('GET', KEYS[1])
  if seen then return tonumber(seen) end
  return nil
end
local function applied(code)
  redis.call('SET', KEYS[1], code, 'PX', ARGV[1])
  return code
end
local HEAD = '^{"v":(%d+),"e":(%d+),'
local LIVE = '^{"v":%d+,"e":%d+,"s":{"live":{"c":%d+,"l":%d+,"a":[%dnul]+,'
local function bound(raw, marker)
  local _, e = string.find(raw, LIVE)
  return e ~= nil and string.sub(raw, e + 1, e + #marker) == marker
end
"#;

/// KEYS: record, indexes... ARGV: json, ttl, retry ("1" on the retry
/// after a lost reply, else "0"), (member, index ttl)... Returns 1 if
/// inserted, 0 if the key exists.
///
/// No receipt: the key is fresh and random, so a retry that finds the
/// very bytes it sends was preceded by its own first attempt (or by a
/// rotation's roll-forward writing the same successor, which counts as
/// written too). A first attempt that finds them is an insert twice, and
/// `Exists` like any other. This saves a receipt key per new session.
pub(super) const LUA_INSERT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  if ARGV[3] == '1' and cur == ARGV[1] then return 1 end
  return 0
end
index(2, 3)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// KEYS: record, index? ARGV: expected version, json, ttl, retry ("1" on
/// the retry after a lost reply, else "0"), mark, the version written,
/// (member, index ttl, binding)? Returns 1 done, 0 missing, -1 conflict,
/// -2 unreadable stored record, -4 unsettled (a retry that cannot tell
/// whether its first attempt landed). The index is written only if the
/// binding is empty or the stored record does not show it: a save that
/// keeps a session's user and absolute deadline leaves the index alone
/// (see "The per-user index" in the module docs of `store::redis`).
///
/// No receipt: the json ends with `mark`, `,"w":<64 random bits>}`, which
/// names this write, and a touch keeps it. A retry that finds a version
/// other than `expected` looks at the stored record: its own mark means
/// its first attempt landed and nothing has been written since (1). Else,
/// since every write raises the version, a version not above the one it
/// writes means the first attempt did not land (-1); a higher one may
/// have been written after it (-4).
pub(super) const LUA_REPLACE: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ver = string.match(raw, HEAD)
if not ver then return -2 end
if ver ~= ARGV[1] then
  if ARGV[4] == '1' then
    if string.sub(raw, -#ARGV[5]) == ARGV[5] then return 1 end
    if gt(ver, ARGV[6]) then return -4 end
  end
  return -1
end
if not (KEYS[2] and ARGV[9] ~= '' and bound(raw, ARGV[9])) then index(2, 6) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// KEYS: record. ARGV: last_seen, expires_at, ttl for that expires_at.
/// Returns 1 if live (touched), 0 if missing or not live, -2 unreadable.
/// Only the leading digits change; the rest of the value is kept as is.
/// It only ever raises the two deadlines, so running it twice is running
/// it once: it needs no receipt to be retried.
pub(super) const LUA_TOUCH: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local _, e, ver, exp, created, seen = string.find(raw,
  '^{"v":(%d+),"e":(%d+),"s":{"live":{"c":(%d+),"l":(%d+),')
if not e then
  if string.find(raw, '^{"v":%d+,"e":%d+,"s":{"') then return 0 end
  return -2
end
local seen_up, exp_up = gt(ARGV[1], seen), gt(ARGV[2], exp)
if not seen_up and not exp_up then return 1 end
if seen_up then seen = ARGV[1] end
if exp_up then exp = ARGV[2] end
local out = '{"v":' .. ver .. ',"e":' .. exp ..
  ',"s":{"live":{"c":' .. created .. ',"l":' .. seen .. ',' ..
  string.sub(raw, e + 1)
if exp_up then
  redis.call('SET', KEYS[1], out, 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], out, 'KEEPTTL')
end
return 1
"#;

/// KEYS: receipt, old, new, indexes... ARGV: receipt ttl, expected,
/// retired json, ttl, record json, ttl, (member, index ttl)... Returns 1 done, 0 old
/// missing, -1 conflict, -2 unreadable old record, -3 new exists. Nothing
/// is written unless all checks pass.
pub(super) const LUA_ROTATE: &str = r#"
local seen = replay()
if seen then return seen end
local raw = redis.call('GET', KEYS[2])
if not raw then return 0 end
local ver = string.match(raw, HEAD)
if not ver then return -2 end
if ver ~= ARGV[2] then return -1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
index(4, 6)
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
return applied(1)
"#;

/// KEYS: receipt, record. ARGV: receipt ttl. Returns 1 if a record was
/// deleted, 0 if there was none (which a retry would find again, so it
/// leaves no receipt).
pub(super) const LUA_REMOVE: &str = r#"
local seen = replay()
if seen then return seen end
if redis.call('DEL', KEYS[2]) == 0 then return 0 end
return applied(1)
"#;

/// KEYS: index. ARGV: member, index ttl. Adds the member (and raises the
/// index's expiry) on its own: the cluster store's index step, since there
/// a user index lives in another slot than the record.
pub(super) const LUA_INDEX: &str = r#"
index(1, 0)
return 1
"#;

/// KEYS: records. ARGV: now. Deletes those whose expires_at <= now and
/// returns how many.
pub(super) const LUA_PURGE: &str = r#"
local n = 0
for i = 1, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local _, exp = string.match(raw, HEAD)
    if exp and not gt(exp, ARGV[1]) then
      redis.call('DEL', KEYS[i])
      n = n + 1
    end
  end
end
return n
"#;

/// KEYS: index, records... ARGV: (member, value seen or '' for missing)...
/// Removes each member whose record still has the value seen, so a
/// concurrent write is never undone. Returns how many were removed.
pub(super) const LUA_UNINDEX: &str = r#"
local n = 0
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i]) or ''
  if cur == ARGV[2 * i - 2] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[2 * i - 3])
  end
end
return n
"#;
