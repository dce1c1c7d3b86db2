-- The benchmark's "realistic redaction" filter (scripts/bench-lua):
-- drops test tenants, redacts personal fields, masks wallet addresses.
local TEST = { ["tenant-test"] = true }
local PII = { "data.email", "data.phone", "data.buyerName",
              "data.shipping.street", "data.shipping.phone" }
local function mask(v) return v:sub(1, 6) .. "..." .. v:sub(-4) end
function filter(ev, topic, tenant)
  if TEST[tenant or ev.tenantid] then
    return "drop"
  end
  local d = ev.data
  if type(d) ~= "table" then return "keep" end
  local n = es.redact(ev, PII)
  for _, k in ipairs({ "walletAddress", "ownerAddress" }) do
    local v = d[k]
    if type(v) == "string" and #v == 42 then
      d[k] = mask(v); n = n + 1
    end
  end
  if n == 0 then return "keep" end
  return ev
end
