-- tiktok_app.files: which file on the server a post's `video_file` names.
--
-- Each user has a folder of their own, APP_FILES_DIR/<user>/ (where your
-- pipeline leaves that user's rendered videos): a name is looked up there
-- only, and the file's real path (symbolic links resolved) must still be
-- inside that folder. No answer names a server path: messages name the
-- file as the client gave it (hide_paths cleans the library's messages).
local config = require "tiktok_app.config"

local type, ipairs, pcall = type, ipairs, pcall
local ffi_ok, ffi = pcall(require, "ffi")

local _M = {}

local realpath
if ffi_ok then
    ffi.cdef [[ char *realpath(const char *path, char *resolved_path); void free(void *ptr); ]]
    realpath = function(path)
        local p = ffi.C.realpath(path, nil)
        if p == nil then return nil end
        local s = ffi.string(p)
        ffi.C.free(p)
        return s
    end
else
    realpath = function() return nil end
end

local NAME_RULE = "a file name in your files folder (letters, digits, '.', '_', '-', '/'; no '..')"

local function quote(name)
    return "'" .. name:gsub("[%c']", "?") .. "'"
end

--- files.resolve(who, name) -> real path | nil, problem
function _M.resolve(who, name)
    local dir = config.cfg.files_dir
    if not dir then
        return nil, "posting a server file is off in this app (no APP_FILES_DIR); give a Video URL"
    end
    if #name > 255 or not name:match("^[%w_][%w%._%-/]*$") or name:find("..", 1, true)
       or name:find("//", 1, true) then
        return nil, "Video file must be " .. NAME_RULE
    end
    local home = realpath(dir .. "/" .. who.user)
    local path = home and realpath(home .. "/" .. name)
    if not path or path:sub(1, #home + 1) ~= home .. "/" then
        -- missing, or a link that leads out of the folder: the same answer
        return nil, "Video file: there is no file " .. quote(name) .. " in your files folder"
    end
    return path
end

local function plain(s)
    return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- files.hide_paths(text) -> text without the server's file paths: a path
-- in a user's folder becomes the name inside it, other app paths "[server]".
function _M.hide_paths(text)
    if type(text) ~= "string" then return text end
    local cfg = config.cfg
    for _, dir in ipairs({ cfg.files_dir and realpath(cfg.files_dir) or false, cfg.files_dir or false }) do
        if dir then text = text:gsub(plain(dir) .. "/[^/%s]+/", "") end
    end
    local store_dir = cfg.store:match("^(.*)/[^/]*$")
    if store_dir and store_dir ~= "" then text = text:gsub(plain(store_dir), "[server]") end
    return text
end

return _M
