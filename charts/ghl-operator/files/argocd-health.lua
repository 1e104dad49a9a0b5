-- Argo CD health check for ghl.servis.ai GhlConnection, ContactSyncPolicy and TagRule (one
-- script for the three kinds; argocd-cm keys in the README). Reads only status:
--   Healthy      Ready=True and status.observedGeneration is the current generation
--   Progressing  not observed yet, out of date, or reconciling / waiting
--   Degraded     Stalled=True, Ready=False for a reason only a change can fix, or (a
--                connection) Exporting=False: a change feed sink fails
--   Suspended    mode: Plan with changes pending (nothing is applied until someone acts)
local hs = { status = "Progressing", message = "Waiting for the operator" }

-- Reasons for Ready=False that no retry fixes: the spec, a Secret or the grant must change.
local terminal = {
  InvalidSpec = true,
  SecretNotFound = true,
  SecretNotOwned = true,
  CredentialsRejected = true,
  ReauthorizationRequired = true,
  AuthorizationCodeInvalid = true,
  MaxAgeExceeded = true,
  BaseUrlNotAllowed = true,
  CrossNamespaceReferenceDenied = true,
  ConnectionNotFound = true,
  SafetyLimitExceeded = true,
  RenewBeforeTooLong = true,
}

local function condition(name)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == name then
      return c
    end
  end
  return nil
end

local function says(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local function pending(plan)
  if plan == nil then
    return 0
  end
  return (plan.create or 0) + (plan.update or 0) + (plan.delete or 0) + (plan.adopt or 0)
end

if obj.status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled, "Stalled")
  return hs
end
local exporting = condition("Exporting")
if ready ~= nil and ready.status == "True" and exporting ~= nil and exporting.status == "False" then
  hs.status = "Degraded"
  hs.message = "change feed: " .. says(exporting, "a sink fails")
  return hs
end
if ready ~= nil and ready.status == "True" then
  local mode = obj.spec and obj.spec.mode
  local changes = pending(obj.status.plan)
  if mode == "Plan" and changes > 0 then
    hs.status = "Suspended"
    hs.message = "mode Plan: " .. tostring(changes) .. " change(s) pending; " .. says(ready, "")
    return hs
  end
  hs.status = "Healthy"
  hs.message = says(ready, "Ready")
  return hs
end
if ready ~= nil and ready.status == "False" and terminal[ready.reason or ""] then
  hs.status = "Degraded"
  hs.message = says(ready, ready.reason)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = says(reconciling, "Reconciling")
  return hs
end
hs.message = says(ready, "Waiting for the operator")
return hs
