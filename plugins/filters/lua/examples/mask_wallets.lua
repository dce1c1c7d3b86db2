-- Mask wallet and contract addresses in blockchain-svc events
-- (eventzr.blockchain.*): "0x1234...abcd" keeps the first 6 and last 4
-- characters, enough to correlate in support tickets, not enough to track
-- a wallet. Any string field of `data` that looks like an address is
-- masked; transaction hashes (64 hex digits) are left alone.
local function mask(v)
  return v:sub(1, 6) .. "..." .. v:sub(-4)
end

local function is_address(v)
  return type(v) == "string" and #v == 42 and v:find("^0x%x+$") ~= nil
end

function filter(ev)
  local data = ev.data
  if type(data) ~= "table" then
    return "keep"
  end
  local changed = false
  for k, v in pairs(data) do
    if is_address(v) then
      data[k] = mask(v)
      changed = true
    end
  end
  if not changed then
    return "keep"
  end
  return ev
end
