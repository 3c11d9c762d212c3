-- wrk script for `python -m bench`: one request per line of a token file, in order.
-- args: <token file|-> <start offset> <method> <body template> ["Header: value template"...]
-- "{T}" in the body or a header is replaced by the next token (the file wraps around).
--
-- The load generator shares the 2 cores with the servers it measures, so it must be cheap:
-- a file of one token (or "-") makes a static request (wrk sends its prepared buffer without
-- calling Lua); otherwise the request is formatted once around a marker and each request is
-- one string concatenation (plus Content-Length when the body carries the token).
local tokens, n, i = {}, 0, 0
local MARK = "\0TOKEN\0"
local head_pre, head_post          -- the request head, split at the token's place (if a header has it)
local body_pre, body_post          -- the body, split at the token's place (if it has it)

local function split(template)
  local s, e = string.find(template, "{T}", 1, true)
  if not s then return template, nil end
  return string.sub(template, 1, s - 1), string.sub(template, e + 1)
end

function init(args)
  if args[1] ~= "-" then
    for line in io.lines(args[1]) do
      if #line > 0 then n = n + 1; tokens[n] = line end
    end
  end
  i = tonumber(args[2]) or 0
  local method = args[3]
  if args[4] ~= "" then body_pre, body_post = split(args[4]) end
  local h, marks = {}, 0
  for k = 5, #args do
    local name, value = string.match(args[k], "^([^:]+):%s*(.*)$")
    local pre, post = split(value)
    if post then h[name] = pre .. MARK .. post; marks = marks + 1 else h[name] = pre end
  end
  assert(marks <= 1, "rotate.lua: at most one header may carry {T}")
  if n <= 1 then
    local t = tokens[1] or ""
    wrk.method = method
    for name, value in pairs(h) do
      local s, e = string.find(value, MARK, 1, true)
      wrk.headers[name] = s and (string.sub(value, 1, s - 1) .. t .. string.sub(value, e + 1)) or value
    end
    if body_pre then wrk.body = body_post and (body_pre .. t .. body_post) or body_pre end
    request = nil           -- static: no Lua per request
    return
  end
  -- wrk.format without a body ends the head with an empty line; keep it open for Content-Length
  local head = wrk.format(method, nil, h, nil)
  head = string.sub(head, 1, #head - 2)
  local s, e = string.find(head, MARK, 1, true)
  if s then head_pre, head_post = string.sub(head, 1, s - 1), string.sub(head, e + 1)
  else head_pre = head end
end

function request()
  local t = tokens[(i % n) + 1]; i = i + 1
  local head = head_post and (head_pre .. t .. head_post) or head_pre
  if not body_pre then return head .. "\r\n" end
  local body = body_post and (body_pre .. t .. body_post) or body_pre
  return head .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
