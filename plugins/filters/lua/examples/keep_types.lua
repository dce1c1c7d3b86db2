-- Forward only the event types a partner subscribed to; drop the rest.
-- Here: marketplace orders and completed listings' sales on chain.
local WANTED = {
  ["eventzr.marketplace.order.created.v1"] = true,
  ["eventzr.marketplace.order.completed.v1"] = true,
  ["eventzr.marketplace.order.cancelled.v1"] = true,
  ["eventzr.blockchain.listing.sold.v1"] = true,
}

function filter(ev)
  return WANTED[ev.type] == true -- true keeps, false drops
end
