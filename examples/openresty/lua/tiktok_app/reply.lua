-- tiktok_app.reply: how the app answers: JSON bodies, errors and the
-- security headers of every answer.
--
-- The HTTP status of a lua-tiktok error comes from the library
-- (tiktok.errors.http_status, by the error's class); only the situations
-- that are this app's own (no user: 401, wrong method: 405) name theirs.
local errors = require "tiktok.errors"
local json = require "tiktok.json"
local schema = require "tiktok.fields"
local files = require "tiktok_app.files"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local ngx = ngx

local _M = {}

-- The security headers (Content-Security-Policy, X-Frame-Options, nosniff,
-- Referrer-Policy) are nginx.conf's: one place for every answer, the
-- static files and nginx's own error pages included.

--- reply.list(t) -> a copy of the sequence t marked as a JSON array
function _M.list(t)
    local out = json.array()
    for i, v in ipairs(t or {}) do out[i] = v end
    return out
end

--- reply.send(status, body[, headers]): a JSON answer, and the end of the request.
function _M.send(status, body, headers)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    for k, v in pairs(headers or {}) do ngx.header[k] = v end
    local s = assert(json.encode(body))
    ngx.print(s, "\n")
    return ngx.exit(status)
end

-- The field each problem is about. err.fields says it; an error that
-- came back from an nginx worker thread has lost it on the way (lua-tiktok
-- 0.1.0's errors.restore), and then the field is the first one whose label
-- a problem worded for a form quotes ("Allow comments" cannot be ...).
local function problem_fields(err)
    if err.fields then return err.fields end
    local out = {}
    for i, p in ipairs(err.problems) do
        local best
        for _, f in ipairs(schema.list) do
            local at = p:find('"' .. f.label .. '"', 1, true)
            if at and (not best or at < best) then best, out[i] = at, f.name end
        end
        out[i] = out[i] or false
    end
    return out
end

--- reply.error_body(err) -> the JSON object of an error
function _M.error_body(err)
    local e = { code = err.code, message = err.message, retryable = err.retryable == true }
    if err.problems then
        e.problems = _M.list(err.problems)
        local about = problem_fields(err)
        local f = json.array()
        for i = 1, #err.problems do f[i] = about[i] or json.null end
        e.fields = f
    end
    if err.choices then e.choices = _M.list(err.choices) end
    e.message, e.detail = files.hide_paths(e.message), files.hide_paths(err.detail)
    e.publish_id, e.log_id = err.publish_id, err.log_id
    e.retry_after, e.fail_reason = err.retry_after, err.fail_reason
    if err.reauth then e.reauth = true end
    return e
end

--- reply.fail(err[, status]): the error as JSON, with the status its class
-- gives (or `status`), and Retry-After where waiting helps.
function _M.fail(err, status)
    status = status or errors.http_status(err)
    local headers
    if err.retry_after and (status == 429 or status == 503) then
        headers = { ["Retry-After"] = tostring(err.retry_after) }
    elseif status == 503 then
        headers = { ["Retry-After"] = "5" }
    end
    if status >= 500 then ngx.log(ngx.ERR, "tiktok example: ", tostring(err)) end
    return _M.send(status, { error = _M.error_body(err) }, headers)
end

--- reply.fail_with(status, code, message[, fields]): an error of this app's own.
function _M.fail_with(status, code, message, fields)
    return _M.fail(errors.new(code, message, fields), status)
end

--- reply.method(m) -> true when the request uses m (GET also takes HEAD);
-- otherwise answers 405 and returns false.
function _M.method(m)
    local got = ngx.req.get_method()
    if got == m or (m == "GET" and got == "HEAD") then return true end
    ngx.header["Allow"] = m
    _M.fail_with(405, "invalid_argument", "use " .. m .. " for " .. ngx.var.uri)
    return false
end

--- reply.path_id(var, pattern, what) -> the id nginx.conf's location took
-- from the path ($var), or nil after answering 400 when it does not fit
function _M.path_id(var, pattern, what)
    local id = ngx.var[var]
    if not id or #id > 128 or not id:match(pattern) then
        _M.fail_with(400, "invalid_argument", "not " .. what)
        return nil
    end
    return id
end

--- reply.arg(name) -> a query argument as one string (nil when absent,
-- repeated or empty)
function _M.arg(name)
    local v = ngx.req.get_uri_args(20)[name]
    if type(v) == "string" and v ~= "" then return v end
    return nil
end

--- reply.wants_html() -> true for a browser's navigation (Accept: text/html)
function _M.wants_html()
    local accept = ngx.var.http_accept or ""
    return accept:find("text/html", 1, true) ~= nil
end

--- reply.redirect(path): 302/303 to a path of this app (never a full URL:
-- with `absolute_redirect off` the Host header cannot steer it).
function _M.redirect(path, status)
    ngx.header["Cache-Control"] = "no-store"
    return ngx.redirect(path, status or 302)
end

return _M
