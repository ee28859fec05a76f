import js from "@eslint/js";
import tseslint from "typescript-eslint";

// Dependencies point inward (DESIGN §8). `api/` is the model everyone shares; `catalog/`,
// `reconcile/` and the gateway's policy know interfaces; the adapters (kube, store,
// secrets, drivers, observability) implement those interfaces and never import each
// other's implementations; only the composition roots (main.ts, gateway.ts, cli/) see all.
const src = "controller/src";
const ours = (...folders) => folders.map((f) => `**/${f}/**`);
const library = {
  kube: { group: ["@kubernetes/client-node"], message: "only controller/src/kube imports client-node" },
  store: {
    group: ["kysely", "kysely-*", "@electric-sql/*"],
    message: "only controller/src/store talks to the database",
  },
  // undici is the transport of our Vault client (secrets/) and of client-node (kube/);
  // node-vault was replaced by that client (README, Secrets) and stays out.
  vault: {
    group: ["undici", "node-vault"],
    message:
      "only controller/src/secrets (the Vault client) and kube (client-node's transport) import undici",
  },
  protocols: {
    group: ["imapflow", "nodemailer", "nodemailer/*", "pg"],
    message: "only controller/src/drivers (and store, for pg) speak the protocols",
  },
};
/** Imports of our own folders a folder may not make; `ports.ts` files are interfaces and always allowed. */
const restrict = (files, forbiddenFolders, libraries) => ({
  files: files.map((f) => `${src}/${f}`),
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: [
          ...(forbiddenFolders.length
            ? [
                {
                  group: [...ours(...forbiddenFolders), "!**/ports.ts"],
                  message:
                    "dependencies point inward (DESIGN §8): import an interface (ports.ts), not an implementation",
                },
              ]
            : []),
          ...libraries.map((l) => library[l]),
        ],
      },
    ],
  },
});
const adapters = ["kube", "store", "secrets", "drivers", "observability", "gateway", "cli"];

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".data/", "coverage/", "charts/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  restrict(["api/**/*.ts"], ["catalog", "reconcile", ...adapters], ["kube", "store", "vault", "protocols"]),
  restrict(["catalog/**/*.ts"], ["reconcile", ...adapters], ["kube", "store", "vault", "protocols"]),
  restrict(["reconcile/**/*.ts"], adapters, ["kube", "store", "vault", "protocols"]),
  restrict(
    ["drivers/**/*.ts"],
    ["reconcile", ...adapters.filter((a) => a !== "drivers")],
    ["kube", "store", "vault"],
  ),
  restrict(
    ["kube/**/*.ts"],
    adapters.filter((a) => a !== "kube"),
    ["store", "protocols"],
  ),
  restrict(
    ["store/**/*.ts"],
    adapters.filter((a) => a !== "store"),
    ["kube", "vault"],
  ),
  restrict(
    ["secrets/**/*.ts"],
    adapters.filter((a) => a !== "secrets"),
    ["kube", "store", "protocols"],
  ),
  restrict(
    ["observability/**/*.ts"],
    adapters.filter((a) => a !== "observability"),
    ["kube", "store", "vault", "protocols"],
  ),
);
