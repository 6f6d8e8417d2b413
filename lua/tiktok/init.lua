-- lua-tiktok: connect TikTok accounts (Login Kit) and post videos and photos
-- (Content Posting API). See README.md for the API.
local connection = require "tiktok.connection"
local post = require "tiktok.post"

local _M = {
    _VERSION = "0.1.0",
    template = require "tiktok.template",
    settings = require "tiktok.settings",
    errors = require "tiktok.errors",
    store = require "tiktok.store",
    webhook = require "tiktok.webhook",
    core = require "tiktok.core",
    post = post.post,
    status = post.status,
    resume = post.resume,
    parse_callback = connection.parse_callback,
    warm_threads = require("tiktok.openresty").warm_threads,
}

-- tiktok.connect{...} -> connection | nil, err (see connection.DEFAULTS)
function _M.connect(opts)
    return connection.new(opts)
end

_M.DEFAULTS = connection.DEFAULTS

return _M
