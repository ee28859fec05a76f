// Argo CD's health check for Connectors (examples/argocd/connector-health.lua), run in a real
// Lua VM the way Argo CD runs it: the resource in the global `obj`, the chunk's returned table
// read as {status, message}, and only the libraries Argo CD opens for resource.customizations
// scripts (base, table, package: no string, no math), so a script that would fail in Argo CD
// fails here too.
import * as fs from "node:fs";
import * as path from "node:path";
import fengari from "fengari";
import { projectRoot } from "../../controller/src/api/paths.ts";

const { lua, lauxlib, lualib, to_luastring } = fengari;
type LuaState = ReturnType<typeof lauxlib.luaL_newstate>;

export const SCRIPT = fs.readFileSync(path.join(projectRoot, "examples/argocd/connector-health.lua"), "utf8");

// Argo CD's accepted health codes; anything else is reported as Unknown.
const VALID = new Set(["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"]);

export interface Health {
  status: string;
  message: string;
}

/** JSON => Lua like Argo CD's decodeValue: arrays 1-based, objects keyed by string. */
function push(L: LuaState, value: unknown): void {
  if (value === null || value === undefined) lua.lua_pushnil(L);
  else if (typeof value === "boolean") lua.lua_pushboolean(L, value);
  // gopher-lua has only floats, and prints a whole one without ".0" (tostring(3) == "3");
  // Lua 5.3 does the same for integers, so whole numbers go in as integers.
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) lua.lua_pushinteger(L, value);
    else lua.lua_pushnumber(L, value);
  } else if (typeof value === "string") lua.lua_pushstring(L, to_luastring(value));
  else if (Array.isArray(value)) {
    lua.lua_createtable(L, value.length, 0);
    value.forEach((item, i) => {
      push(L, item);
      lua.lua_rawseti(L, -2, i + 1);
    });
  } else if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    lua.lua_createtable(L, 0, entries.length);
    for (const [k, v] of entries) {
      push(L, v);
      lua.lua_setfield(L, -2, to_luastring(k));
    }
  } else throw new Error(`cannot pass ${typeof value} to Lua`);
}

function field(L: LuaState, name: string): string {
  const t = lua.lua_getfield(L, -1, to_luastring(name));
  const s =
    t === lua.LUA_TSTRING ? lua.lua_tojsstring(L, -1) : `<${t === lua.LUA_TNIL ? "nil" : "not a string"}>`;
  lua.lua_pop(L, 1);
  return s;
}

/** Runs a health script against one resource, as Argo CD's ExecuteHealthLua does. */
export function runHealth(obj: unknown, script: string = SCRIPT): Health {
  const L = lauxlib.luaL_newstate();
  try {
    for (const [name, open] of [
      ["package", lualib.luaopen_package],
      ["_G", lualib.luaopen_base],
      ["table", lualib.luaopen_table],
    ] as const) {
      lauxlib.luaL_requiref(L, to_luastring(name), open, 1);
      lua.lua_pop(L, 1);
    }
    push(L, obj);
    lua.lua_setglobal(L, to_luastring("obj"));
    if (lauxlib.luaL_loadstring(L, to_luastring(script)) !== lua.LUA_OK)
      throw new Error(`Lua syntax error: ${lua.lua_tojsstring(L, -1)}`);
    if (lua.lua_pcall(L, 0, lua.LUA_MULTRET, 0) !== lua.LUA_OK)
      throw new Error(`Lua error: ${lua.lua_tojsstring(L, -1)}`);
    if (lua.lua_gettop(L) === 0 || lua.lua_type(L, -1) !== lua.LUA_TTABLE)
      throw new Error("the script must return a table");
    const health = { status: field(L, "status"), message: field(L, "message") };
    if (!VALID.has(health.status)) throw new Error(`invalid health status ${health.status}`);
    return health;
  } finally {
    lua.lua_close(L);
  }
}
