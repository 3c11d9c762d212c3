-- wrk script for `python -m bench`: one request per line of a token file, in order.
-- args: <token file|-> <start offset> <method> <body template> ["Header: value template"...]
-- "{T}" in the body or a header is replaced by the next token (the file wraps around).
-- A file of one token (or "-") makes a static request: wrk sends it without Lua per request.
local tokens, n, i = {}, 0, 0
local method, body_pre, body_post
local headers = {}

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
  method = args[3]
  if args[4] ~= "" then body_pre, body_post = split(args[4]) end
  for k = 5, #args do
    local name, value = string.match(args[k], "^([^:]+):%s*(.*)$")
    local pre, post = split(value)
    headers[#headers + 1] = { name, pre, post }
  end
  if n <= 1 then
    -- One token (or none): every request is the same bytes. Hand them to wrk and drop
    -- request(), so wrk sends its prepared buffer without calling Lua per request — the load
    -- generator shares the 2 cores with the servers it measures.
    local t = tokens[1] or ""
    wrk.method = method
    for _, v in ipairs(headers) do
      if v[3] then wrk.headers[v[1]] = v[2] .. t .. v[3] else wrk.headers[v[1]] = v[2] end
    end
    if body_pre then
      if body_post then wrk.body = body_pre .. t .. body_post else wrk.body = body_pre end
    end
    request = nil
  end
end

function request()
  local t = ""
  if n > 0 then t = tokens[(i % n) + 1]; i = i + 1 end
  local h = {}
  for _, v in ipairs(headers) do
    if v[3] then h[v[1]] = v[2] .. t .. v[3] else h[v[1]] = v[2] end
  end
  local body = nil
  if body_pre then
    if body_post then body = body_pre .. t .. body_post else body = body_pre end
  end
  return wrk.format(method, nil, h, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
