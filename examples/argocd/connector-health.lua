-- Argo CD health check for cynodeai.io/Connector (DESIGN.md §3). The one source of this
-- script: examples/argocd/argocd-cm.yaml embeds it verbatim under
-- resource.customizations.health.cynodeai.io_Connector (hack/sync-chart.ts writes it,
-- test/unit/chart-sync.test.ts fails when the copy differs).
--
-- Argo CD runs it with the live resource in the global `obj` and reads the table it
-- returns: { status = Healthy|Progressing|Degraded|Suspended, message = "..." }. Argo CD
-- (gopher-lua, Lua 5.1) opens only the base, table, package and a safe os library for
-- resource.customizations scripts, so this uses no string or math functions.
--
--   no status, or status.observedGeneration < metadata.generation  => Progressing
--   Stalled=True (an invalid spec, refused credentials, an open breaker) => Degraded
--   Ready=True with reason Disabled                                 => Suspended
--   Ready=True (active; also degraded: a failed probe while the
--     breaker is closed, or Vault or the database briefly away while
--     the last good state holds: said in the message)               => Healthy
--   anything else (Ready False/Unknown/absent, Reconciling)         => Progressing
--
-- The controller sets Stalled=True exactly for the hard failures, so kstatus (Flux,
-- kubectl wait) reads Failed where Argo CD reads Degraded.

local hs = {}

local function condition(conditions, ctype)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == ctype then
      return c
    end
  end
  return nil
end

local function is(c, status)
  return c ~= nil and c.status == status
end

-- "<reason>: <message>", or whichever of the two is there, or the fallback.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason
  local message = c.message
  if type(reason) == "string" and reason ~= "" and type(message) == "string" and message ~= "" then
    return reason .. ": " .. message
  end
  if type(message) == "string" and message ~= "" then
    return message
  end
  if type(reason) == "string" and reason ~= "" then
    return c.type .. " is " .. tostring(c.status) .. ": " .. reason
  end
  return fallback
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if type(status) ~= "table" then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to report status"
  return hs
end

local observed = status.observedGeneration
if observed == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe the Connector"
  return hs
end
if type(generation) == "number" and type(observed) == "number" and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
    .. " (status is for generation " .. tostring(observed) .. ")"
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local synced = condition(conditions, "Synced")
local ready = condition(conditions, "Ready")
local healthy = condition(conditions, "Healthy")
local reconciling = condition(conditions, "Reconciling")

if is(stalled, "True") then
  hs.status = "Degraded"
  hs.message = describe(stalled, "The controller cannot apply this generation")
  return hs
end
if is(ready, "True") then
  if ready.reason == "Disabled" then
    hs.status = "Suspended"
    hs.message = describe(ready, "Connector is disabled")
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, "Connector is ready")
  -- Passing trouble is worth reading, not worth an alert.
  if is(synced, "False") then
    hs.message = hs.message .. " (" .. describe(synced, "the last reconcile failed") .. ")"
  elseif is(healthy, "False") then
    hs.message = hs.message .. " (" .. describe(healthy, "a health check failed") .. ")"
  end
  return hs
end

hs.status = "Progressing"
if is(reconciling, "True") then
  hs.message = describe(reconciling, "Reconciling")
else
  hs.message = describe(ready, "Waiting for the Ready condition")
end
return hs
