-- tiktok_app: the OpenResty example app (examples/openresty). nginx.conf
-- calls these functions, one per route; each lives in the module of its
-- concern:
--
--   config.lua     the configuration and each worker's connections
--   reply.lua      JSON answers, errors (status by the error's class), headers
--   identity.lua   who is asking: trusted proxy header or the session cookie
--   accounts.lua   connect (Login Kit), callback, the accounts, creator_info
--   files.lua      which server file a post's video_file names
--   posts.lua      post (as a job), status, resume, caption preview, jobs
--   apps.lua       the settings: TikTok app configurations and their check
--   queue.lua      the job workers (nginx timers), job events as webhooks
--   work.lua       the store work run in the app's own worker threads
--
-- Every lua-tiktok call is made from a content handler or a timer, where
-- the library runs it in an nginx worker thread: the event loop never waits
-- for TikTok. Two connections share one file store: `main` (thread pool
-- "tiktok") for the short calls and `upload` (thread pool "tiktok_upload")
-- for the long chunk uploads, so four uploads in flight never hold up a
-- status poll.
--
-- An account is stored with the app user who connected it as its owner, and
-- only that user (or the workspace, when connected with access=workspace)
-- can list it, read its creator info, post with it or read its posts' status.
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local identity = require "tiktok_app.identity"
local accounts = require "tiktok_app.accounts"
local posts = require "tiktok_app.posts"
local apps = require "tiktok_app.apps"
local queue = require "tiktok_app.queue"

local ngx = ngx

local _M = {}

local page           -- the HTML page, read once

local function module_dir()
    local src = debug.getinfo(1, "S").source:gsub("^@", "")
    return src:match("^(.*)/lua/tiktok_app/[^/]*$") or "."
end

-- init_by_lua, in the master: a configuration mistake stops nginx here.
function _M.init()
    config.load()
    local f = assert(io.open(module_dir() .. "/html/index.html", "rb"))
    page = f:read("*a")
    f:close()
end

-- init_worker_by_lua: every worker-thread VM made and loaded before
-- traffic, and the job workers' timers.
function _M.init_worker()
    config.init_worker()
    queue.init_worker()
end

-- GET /tiktok/: the page.
function _M.page()
    if not reply.method("GET") then return end
    ngx.header["Content-Type"] = "text/html; charset=utf-8"
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(page)
end

_M.me = identity.me
_M.session = identity.session
_M.connect = accounts.connect
_M.callback = accounts.callback
_M.accounts = accounts.accounts
_M.creator = accounts.creator
_M.disconnect = accounts.disconnect
_M.create_post = posts.create
_M.post_status = posts.status
_M.resume_post = posts.resume
_M.preview = posts.preview
_M.jobs = posts.jobs
_M.job = posts.job
_M.cancel_job = posts.cancel_job
_M.apps = function()
    if ngx.req.get_method() == "POST" then return apps.create() end
    return apps.list()
end
_M.app = apps.one
_M.check_app = apps.check
_M.check_account = apps.check_account
_M.job_webhook = queue.receive
_M.events = queue.events

return _M
