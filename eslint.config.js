// Lint every TypeScript file in the workspace with the rules that catch real
// defects here (dropped promises, promises passed where a callback's result is
// ignored, awaiting non-promises, dead code). Type-aware rules use the same
// project service as `tsc`, so a file linted is a file typechecked.
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "**/dist/**", "**/.vite/**"] },
  {
    files: ["packages/**/*.{ts,tsx}", "apps/**/*.{ts,tsx}", "bench/**/*.ts", "scripts/**/*.ts", "*.ts"],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports", disallowTypeAnnotations: false }],
      "@typescript-eslint/no-unsafe-argument": "error",
    },
  },
  {
    // Tests and their fixtures read JSON answers and library internals as `any` on purpose, to assert on them.
    files: ["**/*.test.ts", "**/testing/**", "apps/web/tests/**"],
    rules: { "@typescript-eslint/no-unsafe-argument": "off" },
  },
);
