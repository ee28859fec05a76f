import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Integration files mostly wait on their servers (each starts its own control plane and
    // database, on ports of its own), so three at a time on two cores.
    maxWorkers: 3,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          // They share two cores with the integration files' servers.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: "reliability",
          include: ["test/reliability/**/*.test.ts"],
          globalSetup: ["test/reliability/globalSetup.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          // After unit and integration (which run side by side), not alongside them: its
          // faults (API server restarts, SIGKILLs, a stopped database) need the machine.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
