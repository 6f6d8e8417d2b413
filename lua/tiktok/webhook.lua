-- tiktok.webhook: verifies and decodes TikTok webhook deliveries
-- (TikTok-Signature: t=<unix time>,s=<hex HMAC-SHA256(client_secret, t.."."..body)>).
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"

local type, tonumber, error = type, tonumber, error

local _M = {}

local VERIFY_OPTS = { client_secret = "string", tolerance_s = "integer", now = "number", store = "table",
                      future_skew_s = "integer" }
-- A real TikTok-Signature is "t=<10 digits>,s=<64 hex>": anything much longer
-- is refused before it is parsed.
local MAX_SIGNATURE = 256

-- tiktok.webhook.verify(signature_header, raw_body, { client_secret, tolerance_s = 300,
--                       future_skew_s = 30, store = nil, now })
-- -> event | nil, err. `event` is the decoded body with `content` decoded
-- too (it arrives as a JSON string); ids inside stay exact strings.
-- Refused: a bad or oversized header, a signature that does not match, a
-- timestamp older than tolerance_s or more than future_skew_s ahead, and,
-- with `store` (any store with claim_once, e.g. conn.store), a delivery
-- seen before inside the window (a replay of the same signed request).
function _M.verify(signature, body, opts)
    if type(body) ~= "string" then error("tiktok.webhook.verify: body must be the raw request body", 2) end
    util.check_opts("tiktok.webhook.verify", opts, VERIFY_OPTS)
    if not opts.client_secret or opts.client_secret == "" then
        error("tiktok.webhook.verify: client_secret is required", 2)
    end
    if type(signature) ~= "string" or signature == "" then
        return nil, errors.new("invalid_argument", "the request has no TikTok-Signature header")
    end
    if #signature > MAX_SIGNATURE then
        return nil, errors.new("invalid_argument", "the TikTok-Signature header is " .. #signature
                               .. " bytes long; a real one is under " .. MAX_SIGNATURE)
    end
    local t, s
    for part in signature:gmatch("[^,]+") do
        local k, v = part:match("^%s*(%w+)=(.-)%s*$")
        if k == "t" then t = v elseif k == "s" then s = v end
    end
    if not t or not t:match("^%d+$") or not s or not s:match("^%x+$") then
        return nil, errors.new("invalid_argument", "the TikTok-Signature header is not of the form t=...,s=...")
    end
    local want = core.hmac_sha256_hex(opts.client_secret, t .. "." .. body)
    if not core.consteq(want, s:lower()) then
        return nil, errors.new("forbidden", "the webhook signature does not match: it was not sent by TikTok "
                               .. "for this app (or the body was changed)")
    end
    local now = opts.now or util.now()
    local tolerance = opts.tolerance_s or 300
    local skew = opts.future_skew_s or 30
    local at = tonumber(t)
    if at > now + skew then
        return nil, errors.new("forbidden", "the webhook's timestamp is " .. math.floor(at - now)
                               .. " s in the future (more than " .. skew .. " s): check this machine's clock")
    end
    if now - at > tolerance then
        return nil, errors.new("forbidden", "the webhook is " .. math.floor(now - at)
                               .. " s old, outside the " .. tolerance .. " s window (a replay?)")
    end
    if opts.store then
        if type(opts.store.claim_once) ~= "function" then
            error("tiktok.webhook.verify: store has no claim_once method", 2)
        end
        local first, serr = opts.store:claim_once("webhook:" .. s:lower(), at + tolerance + skew)
        if first == nil then return nil, serr end
        if not first then
            return nil, errors.new("forbidden", "this webhook delivery was already received (the same "
                                   .. "signed request again: a replay); it is refused")
        end
    end
    local event = util.json_decode(body)
    if not event or type(event.event) ~= "string" then
        return nil, errors.new("bad_response", "the webhook body is not a TikTok event")
    end
    if type(event.content) == "string" then
        local content = util.json_decode(event.content)
        if content then event.content = content end
    end
    return event
end

--- webhook.sign(secret, body[, t]) -> the TikTok-Signature header value
-- ("t=<unix time>,s=<hex HMAC-SHA256(secret, t .. "." .. body)>"), the
-- scheme verify() checks.
function _M.sign(secret, body, t)
    if type(secret) ~= "string" or secret == "" then error("tiktok.webhook.sign: secret is required", 2) end
    if type(body) ~= "string" then error("tiktok.webhook.sign: body must be a string", 2) end
    t = string.format("%d", t or math.floor(util.now()))
    return "t=" .. t .. ",s=" .. core.hmac_sha256_hex(secret, t .. "." .. body)
end

local FORWARD_OPTS = { connection = "table", url = "string", secret = "string" }

--- webhook.forwarder{ connection, url, secret } -> function(job, ev)
-- An on_event for tiktok.jobs that forwards every job state change to the
-- application's own URL as a signed webhook, in TikTok's envelope shape:
-- { event = "job.<type>", create_time, content = JSON of { job, ev } },
-- signed like TikTok's deliveries, so the receiver checks it with
-- tiktok.webhook.verify{ client_secret = secret }. A delivery that fails is
-- logged through the connection's log and not retried (the job itself is
-- durable: its state can always be read back with jobs:get).
function _M.forwarder(opts)
    util.check_opts("tiktok.webhook.forwarder", opts, FORWARD_OPTS, 3)
    local conn, url, secret = opts.connection, opts.url, opts.secret
    if not conn or not url or not secret or secret == "" then
        error("tiktok.webhook.forwarder: connection, url and secret are required", 2)
    end
    local json = require "tiktok.json"
    return function(job, ev)
        local content = assert(json.encode({ job = job, ev = ev }))
        local body = assert(json.encode({ event = "job." .. tostring(ev.type), create_time = math.floor(util.now()),
                                          content = content }))
        local ok, err = conn:_send_webhook({ url = url, signature = _M.sign(secret, body), body = body })
        if not ok and conn:_option("log") then
            conn:_option("log")("warn", "tiktok: forwarding job event " .. tostring(ev.type) .. " failed: "
                                .. tostring(err))
        end
        return ok, err
    end
end

return _M
