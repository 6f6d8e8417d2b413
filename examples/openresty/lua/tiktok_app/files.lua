-- tiktok_app.files: which file on the server a post's `video_file` names.
local config = require "tiktok_app.config"

local _M = {}

--- files.resolve(who, name) -> path | nil, problem
function _M.resolve(who, name)   -- luacheck: ignore who
    local dir = config.cfg.files_dir
    if not dir then
        return nil, "video_file is off: start the app with APP_FILES_DIR"
    end
    if not name:match("^[%w_][%w%._%-/]*$") or name:find("..", 1, true) or name:find("//", 1, true) then
        return nil, "video_file must be a file name inside the app's files directory (letters, digits, "
                    .. "'.', '_', '-', '/'; no '..')"
    end
    return dir .. "/" .. name
end

return _M
