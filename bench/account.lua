-- bench/account.lua: connects the sandbox's default creator through the
-- library (authorize URL, the sandbox's consent page, code exchange) and
-- leaves the account in the store BENCH_STORE for the other bench scripts.
-- BENCH_AS_USER: connect it as this app user (the example app's X-User).
local lib = require "bench.lib"

local conn = lib.connect("https")
local url, state, verifier = conn:authorize_url()
local cb = assert(conn:sandbox_approve(url))
local user = os.getenv("BENCH_AS_USER")
local acc, err = conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                 code_verifier = verifier, as = user and { user = user } or nil })
if not acc then lib.fail(err) end
lib.emit({ item = "account", open_id = acc.open_id })
