-- The request log lives in a shared dict (lua_shared_dict sbx_log), outside the
-- Lua heap: thousands of small long-lived entries interleaved with the 64 KiB
-- strings of uploads would otherwise fragment the Lua allocator and make the
-- worker's RSS creep up with every GiB uploaded. When the zone is full the
-- oldest entries are evicted.
local state = require "sandbox.state"
local json = require "sandbox.json"
local cjson = require "cjson.safe"

local M = {}

local function dict() return ngx.shared.sbx_log end

function M.clear()
  dict():flush_all()
  dict():flush_expired(0)
  state.log_first = (state.log_seq or 0) + 1
end

function M.add(entry)
  state.log_seq = (state.log_seq or 0) + 1
  entry.seq = state.log_seq
  dict():set(tostring(entry.seq), json.encode(entry))
end

-- Entries after `since` (a seq), optionally of one endpoint.
function M.list(since, endpoint)
  local out = json.array()
  for seq = math.max(state.log_first or 1, (since or 0) + 1), state.log_seq or 0 do
    local s = dict():get(tostring(seq))
    if s then
      local e = cjson.decode(s)
      if e and (not endpoint or e.endpoint == endpoint) then out[#out + 1] = e end
    end
  end
  return out
end

return M
