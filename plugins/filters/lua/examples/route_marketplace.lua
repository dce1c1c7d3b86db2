-- Route marketplace-svc events by type to the routes that handle them.
-- The route names are other routes of the daemon's config ("name"); an
-- event sent to a route goes to that route's destinations (its filters
-- are not run again). Orders also get an audit copy, with the buyer and
-- seller ids only, sent to the "marketplace-audit" route.
local BY_PREFIX = {
  { "eventzr.marketplace.order.",   "marketplace-orders" },
  { "eventzr.marketplace.dispute.", "marketplace-disputes" },
  { "eventzr.marketplace.listing.", "marketplace-listings" },
}

local function audit_copy(ev)
  local a = es.copy(ev)
  a.id = ev.id .. ":audit"
  a.type = "eventzr.eventstream.audit.v1"
  a.data = { orderId = ev.data.id, buyerId = ev.data.buyerId,
             sellerId = ev.data.sellerId, originalType = ev.type }
  return { event = a, route = "marketplace-audit" }
end

function filter(ev)
  for _, r in ipairs(BY_PREFIX) do
    if ev.type:sub(1, #r[1]) == r[1] then
      if r[2] == "marketplace-orders" and type(ev.data) == "table" then
        return { ev, audit_copy(ev) }, r[2]
      end
      return "keep", r[2]
    end
  end
  return "keep" -- anything else stays on this route
end
