// The part of fengari (Lua 5.3 in JavaScript, no types of its own) the Argo CD health test uses.
declare module "fengari" {
  type LuaState = { readonly __luaState: unique symbol };
  type LuaString = Uint8Array;
  type CFunction = (L: LuaState) => number;

  interface Lua {
    LUA_OK: number;
    LUA_MULTRET: number;
    LUA_TNIL: number;
    LUA_TTABLE: number;
    LUA_TSTRING: number;
    lua_close(L: LuaState): void;
    lua_gettop(L: LuaState): number;
    lua_settop(L: LuaState, idx: number): void;
    lua_pop(L: LuaState, n: number): void;
    lua_pushnil(L: LuaState): void;
    lua_pushboolean(L: LuaState, b: boolean): void;
    lua_pushinteger(L: LuaState, n: number): void;
    lua_pushnumber(L: LuaState, n: number): void;
    lua_pushstring(L: LuaState, s: LuaString): void;
    lua_createtable(L: LuaState, narr: number, nrec: number): void;
    lua_setfield(L: LuaState, idx: number, k: LuaString): void;
    lua_rawseti(L: LuaState, idx: number, n: number): void;
    lua_setglobal(L: LuaState, name: LuaString): void;
    lua_getglobal(L: LuaState, name: LuaString): number;
    lua_getfield(L: LuaState, idx: number, k: LuaString): number;
    lua_type(L: LuaState, idx: number): number;
    lua_tojsstring(L: LuaState, idx: number): string;
    lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
  }

  interface Lauxlib {
    luaL_newstate(): LuaState;
    luaL_loadstring(L: LuaState, s: LuaString): number;
    luaL_requiref(L: LuaState, modname: LuaString, openf: CFunction, glb: number): void;
  }

  interface Lualib {
    luaopen_base: CFunction;
    luaopen_table: CFunction;
    luaopen_package: CFunction;
    luaopen_string: CFunction;
    luaopen_math: CFunction;
  }

  const fengari: {
    lua: Lua;
    lauxlib: Lauxlib;
    lualib: Lualib;
    to_luastring(s: string): LuaString;
    to_jsstring(s: LuaString): string;
  };
  export default fengari;
}
