-- Strip personal data from user/profile events
-- (eventzr.user.profile.updated.v1) before they leave the platform.
-- Names, e-mail addresses and phone numbers are removed; the user id and
-- the non-personal fields stay, so consumers can still sync display state.
local REMOVE = {
  "data.email", "data.phone", "data.phoneNumber",
  "data.firstName", "data.lastName", "data.fullName", "data.name",
  "data.address",
  "data.contacts.*.email", "data.contacts.*.phone",
}

function filter(ev)
  if not ev.type:find("^eventzr%.user%.") then
    return "keep"
  end
  if es.remove(ev, REMOVE) == 0 then
    return "keep" -- nothing personal in it: pass the original bytes on
  end
  ev.data.piiRemoved = true
  return ev
end
