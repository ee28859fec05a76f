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
    // Dependencies point inward: the reconciler knows interfaces, not client libraries.
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
            { group: ["node-vault"], message: "only controller/src/secrets imports node-vault" },
          ],
        },
      ],
    },
  },
);
