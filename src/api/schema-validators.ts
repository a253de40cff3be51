/**
 * Route schema validation, one Ajv per HTTP part. The querystring, path parameters and headers
 * arrive as text, so their values are coerced to the schema's type (`?limit=5` is the integer 5, a
 * single `?state=` an array of one). A JSON body arrives typed, so it is never coerced: a body that
 * says `"priority": true` or `"task": ["demo.echo"]` is a 400 naming the field, not a job with a
 * guessed value.
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyServerOptions } from 'fastify';

type ValidatorFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;
type Coercion = NonNullable<Options['coerceTypes']>;

const COMMON: Options = {
  useDefaults: true,
  removeAdditional: false,
  allErrors: true,
  // The failing value is kept on each error, so that a message can say what was sent (see problem.ts).
  verbose: true,
  addUsedSchema: false,
};

/** How each HTTP part of a request is coerced to its schema's types. */
const COERCE: Record<string, Coercion> = {
  body: false,
  querystring: 'array',
  params: 'array',
  headers: 'array',
};

/**
 * Fastify's `schemaController.compilersFactory.buildValidator`: given the shared schemas
 * (`app.addSchema`), a compiler that picks the Ajv of the part being validated.
 */
export const buildValidators: ValidatorFactory = (externalSchemas) => {
  const instances = new Map<Coercion, Ajv>();
  const ajvFor = (coerceTypes: Coercion): Ajv => {
    let ajv = instances.get(coerceTypes);
    if (!ajv) {
      ajv = new Ajv({ ...COMMON, coerceTypes });
      addFormats.default(ajv);
      for (const schema of Object.values(externalSchemas)) ajv.addSchema(schema);
      instances.set(coerceTypes, ajv);
    }
    return ajv;
  };
  return ({ schema, httpPart }) => {
    // Unknown parts (none today) are validated as a body would be: without coercion.
    const ajv = ajvFor(COERCE[httpPart ?? 'body'] ?? false);
    // A shared schema is compiled once per instance; a route that names one by `$id` reuses it.
    const id = typeof schema === 'object' && schema !== null && '$id' in schema ? schema.$id : undefined;
    const stored = typeof id === 'string' ? ajv.getSchema(id) : undefined;
    return (stored ?? ajv.compile(schema)) as ValidateFunction;
  };
};
