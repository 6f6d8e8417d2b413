-- Unit specs for tiktok.template: render(), variables(), utf16_len().

local before = {}
for k in pairs(_G) do
    before[k] = true
end
local template = require "tiktok.template"
local errors = require "tiktok.errors"


describe("tiktok.template", function()

    it("adds no globals when required", function()
        for k in pairs(_G) do
            assert.is_true(before[k] ~= nil, "new global: " .. tostring(k))
        end
    end)

    describe("render()", function()
        local ok_cases = {
            { "no tags", "plain text #launch", nil, "plain text #launch" },
            { "empty template", "", {}, "" },
            { "one variable", "{{title}} is live", { title = "Spring drop" },
              "Spring drop is live" },
            { "spaces inside braces", "{{ title }}!", { title = "x" }, "x!" },
            { "tabs and spaces", "{{\t title\t}}", { title = "x" }, "x" },
            { "dotted path", "{{a.b.c}}", { a = { b = { c = "deep" } } }, "deep" },
            { "dotted path with spaces", "{{  user.name }}",
              { user = { name = "Ann" } }, "Ann" },
            { "array index", "#{{tags.1}} #{{tags.2}}", { tags = { "a", "b" } },
              "#a #b" },
            { "digit key stored as a string", "{{t.7}}", { t = { ["7"] = "s" } }, "s" },
            { "underscore and digits in names", "{{_x1}}{{a_b.c2}}",
              { _x1 = "1", a_b = { c2 = "2" } }, "12" },
            { "same variable twice", "{{x}}-{{x}}", { x = "y" }, "y-y" },
            { "integer", "{{n}}", { n = 3 }, "3" },
            { "integral float prints without .0", "{{n}}", { n = 3.0 }, "3" },
            { "negative integer", "{{n}}", { n = -42 }, "-42" },
            { "negative zero", "{{n}}", { n = -0.0 }, "0" },
            { "large integer", "{{n}}", { n = 2^53 }, "9007199254740992" },
            { "fraction", "{{n}}", { n = 0.5 }, "0.5" },
            { "huge float", "{{n}}", { n = 1e300 }, "1e+300" },
            { "true", "{{b}}", { b = true }, "true" },
            { "false", "{{b}}", { b = false }, "false" },
            { "empty string value", "[{{s}}]", { s = "" }, "[]" },
            { "value with braces stays literal", "{{v}}", { v = "{{x}}" }, "{{x}}" },
            { "value with % stays literal", "{{v}}", { v = "100%s %1" }, "100%s %1" },
            { "value with code stays literal", "{{v}}",
              { v = "os.exit(1)" }, "os.exit(1)" },
            { "single braces are text", "{a} {b}} }{", {}, "{a} {b}} }{" },
            { "closing braces after a tag", "{{a}}}}", { a = "x" }, "x}}" },
            { "UTF-8 text around tags", "héllo {{n}} 😀", { n = "中" },
              "héllo 中 😀" },
            { "newlines kept", "a\n{{x}}\nb", { x = "y" }, "a\ny\nb" },
        }
        for _, c in ipairs(ok_cases) do
            it(c[1], function()
                local out, err = template.render(c[2], c[3])
                assert.is_nil(err)
                assert.are.equal(c[4], out)
            end)
        end

        it("does not execute anything or look at globals", function()
            local out, err = template.render("{{print}} {{os}}", {})
            assert.is_nil(out)
            assert.are.equal("missing_variable", err.code)
            assert.are.same({ "print", "os" }, err.problems)
        end)

        it("lists all missing variables, once each, in order", function()
            local out, err = template.render(
                "{{title}} {{ slug }} {{title}} {{a.b}} {{tags.3}}",
                { tags = { "x" }, a = "not a table" })
            assert.is_nil(out)
            assert.is_true(errors.is(err))
            assert.are.equal("missing_variable", err.code)
            assert.are.same({ "title", "slug", "a.b", "tags.3" }, err.problems)
            for _, name in ipairs(err.problems) do
                assert.truthy(err.message:find(name, 1, true), name)
            end
            assert.is_false(err.retryable)
        end)

        it("treats nil vars as all missing", function()
            local _, err = template.render("{{x}}")
            assert.are.equal("missing_variable", err.code)
            assert.are.same({ "x" }, err.problems)
        end)

        local bad_values = {
            { "table", { 1 } },
            { "function", function() end },
            { "NaN", 0 / 0 },
            { "infinity", math.huge },
            { "-infinity", -math.huge },
        }
        for _, c in ipairs(bad_values) do
            it("refuses a " .. c[1] .. " value", function()
                local out, err = template.render("x {{v}}", { v = c[2] })
                assert.is_nil(out)
                assert.are.equal("invalid_argument", err.code)
                assert.truthy(err.problems[1]:find("'v'", 1, true))
            end)
        end

        local malformed = {
            -- template, byte position named
            { "{{", 1 },
            { "abc {{ name", 5 },
            { "{{}}", 1 },
            { "x {{   }}", 3 },
            { "{{ a b }}", 1 },
            { "{{a..b}}", 1 },
            { "{{.a}}", 1 },
            { "{{a.}}", 1 },
            { "{{a-b}}", 1 },
            { "{{1a}}", 1 },
            { "{{a.1b}}", 1 },
            { "{{{a}}}", 1 },
            { "{{a\nb}}", 1 },
            { "{{ é }}", 1 },
            { "ok {{a}} then {{ b c }}", 15 },
            { "{{a}", 1 },
        }
        for _, c in ipairs(malformed) do
            it(("refuses malformed %q naming byte %d"):format(c[1], c[2]), function()
                local out, err = template.render(c[1], { a = "1", b = "2", name = "n" })
                assert.is_nil(out)
                assert.are.equal("invalid_template", err.code)
                assert.truthy(err.message:find("byte " .. c[2], 1, true), err.message)
                assert.is_true(#err.problems >= 1)
            end)
        end

        it("lists every malformed tag", function()
            local _, err = template.render("{{a b}} {{}} {{ok}} {{a..b}} {{")
            assert.are.equal("invalid_template", err.code)
            assert.are.equal(4, #err.problems)
        end)

        it("checks syntax before variables", function()
            local _, err = template.render("{{missing}} {{ bad tag }}", {})
            assert.are.equal("invalid_template", err.code)
        end)

        it("raises on wrong argument types", function()
            assert.has_error(function() template.render(nil, {}) end)
            assert.has_error(function() template.render(42, {}) end)
            assert.has_error(function() template.render("x", "vars") end)
            assert.has_error(function() template.render("x", 1) end)
        end)
    end)

    describe("variables()", function()
        it("returns each name once, in order of first use", function()
            assert.are.same({ "title", "a.b", "tags.1" },
                template.variables("{{title}} {{ a.b }} {{title}} {{tags.1}}"))
        end)

        it("returns an empty list for plain text", function()
            assert.are.same({}, template.variables("no tags here"))
        end)

        it("returns nil, err for a malformed template", function()
            local names, err = template.variables("{{ a b }}")
            assert.is_nil(names)
            assert.are.equal("invalid_template", err.code)
        end)

        it("raises on a non-string", function()
            assert.has_error(function() template.variables({}) end)
        end)
    end)

    describe("utf16_len()", function()
        local valid = {
            { "empty", "", 0 },
            { "ASCII", "hello", 5 },
            { "NUL counts as one", "a\0b", 3 },
            { "2-byte (é)", "é", 1 },
            { "3-byte CJK", "中文字", 3 },
            { "emoji is a surrogate pair", "😀", 2 },
            { "emoji with text", "hi 😀!", 6 },
            { "flag = two regional indicators = 4 units", "🇫🇷", 4 },
            { "U+FFFF", "\239\191\191", 1 },
            { "U+10000", "\240\144\128\128", 2 },
            { "U+10FFFF", "\244\143\191\191", 2 },
            { "U+0080", "\194\128", 1 },
            { "U+07FF", "\223\191", 1 },
            { "U+0800", "\224\160\128", 1 },
            { "U+D7FF (just below surrogates)", "\237\159\191", 1 },
            { "U+E000 (just above surrogates)", "\238\128\128", 1 },
        }
        for _, c in ipairs(valid) do
            it(c[1] .. " -> " .. c[3], function()
                assert.are.equal(c[3], template.utf16_len(c[2]))
            end)
        end

        it("counts 2200 emoji as 4400 units", function()
            assert.are.equal(4400, template.utf16_len(("😀"):rep(2200)))
        end)

        local invalid = {
            { "lone continuation byte", "\128", 1 },
            { "overlong 2-byte (C0)", "\192\175", 1 },
            { "overlong 2-byte (C1)", "\193\191", 1 },
            { "overlong 3-byte", "\224\128\175", 1 },
            { "overlong 4-byte", "\240\128\128\175", 1 },
            { "surrogate D800", "\237\160\128", 1 },
            { "surrogate DFFF", "\237\191\191", 1 },
            { "above U+10FFFF (F4 90)", "\244\144\128\128", 1 },
            { "F5 lead byte", "\245\128\128\128", 1 },
            { "FF byte", "ab\255", 3 },
            { "truncated 2-byte", "ab\195", 3 },
            { "truncated 3-byte", "\228\184", 1 },
            { "truncated 4-byte", "x\240\159\152", 2 },
            { "bad continuation", "\195\40", 1 },
            { "bad third byte", "\228\184\40", 1 },
            { "Latin-1 text", "caf\233 au lait", 4 },
        }
        for _, c in ipairs(invalid) do
            it("refuses " .. c[1], function()
                local n, err = template.utf16_len(c[2])
                assert.is_nil(n)
                assert.are.equal("invalid_argument", err.code)
                assert.are.equal("invalid UTF-8 at byte " .. c[3], err.problems[1])
            end)
        end

        it("raises on a non-string", function()
            assert.has_error(function() template.utf16_len(nil) end)
            assert.has_error(function() template.utf16_len(12) end)
        end)
    end)

    describe("hostile input (bounded before parsing)", function()
        it("refuses a template over MAX_TEMPLATE bytes without parsing it", function()
            local out, err = template.render(("{{a}}"):rep(template.MAX_TEMPLATE), {})
            assert.is_nil(out)
            assert.equal("invalid_template", err.code)
            assert.truthy(err.message:find("at most " .. template.MAX_TEMPLATE, 1, true))
        end)

        it("refuses a tag longer than MAX_TAG, quoting only its start", function()
            local out, err = template.render("{{x" .. (" "):rep(60000) .. "y}} and {{ok}}", { ok = 1 })
            assert.is_nil(out)
            assert.equal("invalid_template", err.code)
            assert.truthy(err.problems[1]:find("a tag of 60002 characters (at most 128)", 1, true))
            assert.is_true(#err.message < 400)
        end)

        it("still trims spaces around a name", function()
            assert.equal("1", template.render("{{ \tx" .. (" "):rep(100) .. "}}", { x = 1 }))
        end)
    end)

    describe("set_var()", function()
        it("nests dotted names and refuses clashes and bad names", function()
            local vars = {}
            assert.is_true(template.set_var(vars, "a.b", "x"))
            assert.is_true(template.set_var(vars, "c", 1))
            assert.same({ a = { b = "x" }, c = 1 }, vars)
            assert.is_nil(template.set_var(vars, "a", "y"))
            assert.is_nil(template.set_var(vars, "c.d", "y"))
            assert.is_nil(template.set_var(vars, "a..b", "y"))
            assert.is_nil(template.set_var(vars, "1a", "y"))
            assert.equal("x", template.render("{{a.b}}", vars))
        end)
    end)
end)
