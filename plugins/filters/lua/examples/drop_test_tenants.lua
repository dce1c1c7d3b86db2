-- Drop events of test tenants before they reach any destination.
-- Works on every seed topic: the tenant is the one the host extracted for
-- the route ("tenant" setting), else the envelope's tenantid, else
-- data.tenantId (blockchain-svc puts it there).
local TEST_TENANTS = {
  ["00000000-0000-0000-0000-000000000000"] = true,
  ["tenant-test"] = true,
}

function filter(ev, topic, tenant)
  tenant = tenant or ev.tenantid or (ev.data and ev.data.tenantId)
  if type(tenant) ~= "string" then
    return "keep"
  end
  if TEST_TENANTS[tenant] or tenant:find("^test%-") or tenant:find("^qa%-") then
    return "drop"
  end
  return "keep"
end
