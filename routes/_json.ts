/** Small helpers the route files share for their OpenAPI answers. */
import type { z } from "@hono/zod-openapi";

/**
 * An OpenAPI response with a JSON body.
 *
 * @param schema The body's schema.
 * @param description What the response means.
 * @returns The response object for `createRoute`.
 */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

/**
 * A time as ISO 8601, or `null` when absent. `0` is the epoch, not absent.
 *
 * @param ms Milliseconds since the epoch, `null` or `undefined`.
 * @returns The ISO string, or `null`.
 */
export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();
