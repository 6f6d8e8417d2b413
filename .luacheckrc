-- luacheck config: library code is LuaJIT/5.1-compatible and assigns no globals.
std = "max"
max_line_length = 120
unused_args = false
files["spec/**/*.lua"] = { std = "+busted", max_line_length = false }
files["spec/fixtures/ngx_handlers.lua"] = { globals = { "ngx" } }
files["sandbox/**/*.lua"] = { globals = { "ngx" } }
files["examples/**/*.lua"] = { globals = { "ngx" } }
exclude_files = { "build/**", "**/node_modules/**" }
