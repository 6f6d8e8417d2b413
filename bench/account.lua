-- bench/account.lua: connects the sandbox's default creator through the
-- library (authorize URL with PKCE, the sandbox's consent page, code
-- exchange) and leaves the account in the store BENCH_STORE for the other
-- bench scripts (or, with a user name, that sandbox user's account).
-- (The example app connects its own, through its pages.)
local lib = require "bench.lib"

local conn = lib.connect("https")
local url, state, verifier = conn:authorize_url()
local cb = assert(conn:sandbox_approve(url, { username = arg[1] }))     -- arg[1]: another sandbox user
local acc, err = conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                 code_verifier = verifier })
if not acc then lib.fail(err) end
lib.emit({ item = "account", open_id = acc.open_id })
