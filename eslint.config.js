import js from "@eslint/js";
import tseslint from "typescript-eslint";

// Only drivers/ speaks the providers' protocols (store/ uses pg for its own database).
const PROTOCOLS = {
  group: ["imapflow", "nodemailer", "nodemailer/*"],
  message: "only controller/src/drivers speaks the providers' protocols",
};
const PG_OUTSIDE = {
  group: ["pg"],
  message: "only drivers/ (providers) and store/ (our database) import pg",
};

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
    files: ["controller/src/**/*.ts"],
    ignores: ["controller/src/drivers/**", "controller/src/store/**"],
    rules: { "no-restricted-imports": ["error", { patterns: [PROTOCOLS, PG_OUTSIDE] }] },
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
            PROTOCOLS,
          ],
        },
      ],
    },
  },
  {
    // Drivers are protocol code: of ours they see api/ only (the runner and the gateway call them).
    files: ["controller/src/drivers/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: [
                "../*.ts",
                "../reconcile/*",
                "../kube/*",
                "../store/*",
                "../secrets/*",
                "../catalog/*",
                "../observability/*",
                "../cli/*",
                "../gateway/*",
              ],
              message: "controller/src/drivers imports only controller/src/api of ours",
            },
            {
              group: ["@kubernetes/client-node", "kysely", "kysely-*", "@electric-sql/*", "node-vault"],
              message: "drivers use the protocol libraries only",
            },
          ],
        },
      ],
    },
  },
);
