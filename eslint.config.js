import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".data/", "coverage/", "charts/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-imports": "off",
    },
  },
  {
    // undici is the Vault client's transport (secrets/) and client-node's (kube/): no one
    // else's. The probes speak HTTP with node:http(s), as they speak their other protocols.
    files: ["controller/src/**/*.ts"],
    ignores: ["controller/src/secrets/**", "controller/src/kube/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["undici"],
              message: "only controller/src/secrets and controller/src/kube import undici",
            },
          ],
        },
      ],
    },
  },
  {
    // Dependencies point inward: the reconciler knows interfaces, not client libraries.
    // (This block comes after the one above and repeats its undici rule: for one rule, the last block wins.)
    files: [
      "controller/src/reconcile/**/*.ts",
      "controller/src/api/**/*.ts",
      "controller/src/catalog/**/*.ts",
    ],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["@kubernetes/client-node"], message: "only controller/src/kube imports client-node" },
            {
              group: ["kysely", "pg", "@electric-sql/*", "kysely-*"],
              message: "only controller/src/store talks to the database",
            },
            {
              group: ["undici"],
              message: "only controller/src/secrets and controller/src/kube import undici",
            },
          ],
        },
      ],
    },
  },
);
