-- bench/media.lua DIR SIZE: a real MP4 padded to exactly SIZE bytes
-- (spec/helpers/media.lua: a trailing 'free' box, sparse on disk); prints
-- its path.
local media = require "helpers.media"
io.write(media.mp4(arg[1], { size = math.tointeger and math.tointeger(tonumber(arg[2])) or tonumber(arg[2]) }))
