-- A stream that keeps what is written (for the CLI's stdout and stderr in
-- the in-process specs): sink():text() is everything written so far.
return function()
    local s = { parts = {} }
    function s:write(...)
        for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
        return self
    end
    function s:flush() return self end
    function s:text() return table.concat(self.parts) end
    return s
end
