-- sandbox/README.md's curl walkthrough works when pasted: run the block as written
-- (only the sandbox directory is replaced by a fresh temp dir).
local sandbox = require "spec.helpers.sandbox"

describe("sandbox README walkthrough", function()
  local dir

  lazy_setup(function()
    dir = sandbox.exec("mktemp -d /tmp/tiktok-sandbox-readme.XXXXXX"):gsub("%s+$", "")
  end)

  lazy_teardown(function()
    sandbox.exec(sandbox.shell_quote(sandbox.run) .. " stop --dir " .. sandbox.shell_quote(dir))
    sandbox.exec("rm -rf " .. sandbox.shell_quote(dir))
  end)

  it("authorizes, exchanges the code, inits, uploads two chunks and sees the post id", function()
    local readme = assert(sandbox.read_file(sandbox.root .. "/sandbox/README.md"))
    local block = readme:match("<!%-%- walkthrough:start %-%->%s*```sh\n(.-)```%s*<!%-%- walkthrough:end %-%->")
    assert.truthy(block, "walkthrough block not found")
    assert.truthy(block:find("SANDBOX_DIR=/tmp/tiktok-sandbox\n", 1, true))
    local script = block:gsub("SANDBOX_DIR=/tmp/tiktok%-sandbox\n", "SANDBOX_DIR=" .. dir .. "/sb\n")
    sandbox.write_file(dir .. "/walkthrough.sh", script)
    local out, rc = sandbox.exec("cd " .. sandbox.shell_quote(sandbox.root) .. " && bash " ..
      sandbox.shell_quote(dir .. "/walkthrough.sh"))
    assert.equal(0, rc, out)
    assert.matches("callback%?code=[^&]+&scopes=user%.info%.basic%%2Cvideo%.publish%%2Cvideo%.upload&state=demo", out)
    assert.matches('"access_token":"act%.', out)
    assert.matches('"creator_username":"sandbox_creator"', out)
    assert.matches('"upload_url":"https://localhost:%d+/upload/%?upload_id=', out)
    assert.matches("HTTP/1.1 206 Partial Content", out, 1, true)
    assert.matches("HTTP/1.1 201 Created", out, 1, true)
    assert.matches("Content%-Range: bytes 0%-%d+/%d+", out)
    assert.matches('"publicaly_available_post_id":%[7%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%]', out)
    assert.matches('"status":"PUBLISH_COMPLETE"', out, 1, true)
    local recorded, actual = out:match('"sha256":"(%x+)"%s+(%x+)  clip%.mp4')
    assert.truthy(recorded)
    assert.equal(actual, recorded)
    -- and it stopped the sandbox it started
    local _, st = sandbox.exec(sandbox.shell_quote(sandbox.run) .. " status --dir " .. sandbox.shell_quote(dir .. "/sb"))
    assert.equal(1, st)
  end)
end)
