/** fast-check arbitraries shared by the property tests of canonical JSON and of evidence bundles. */
import fc from 'fast-check';

/**
 * One code point, any plane, surrogate halves included (fast-check's `binary` unit leaves those out,
 * and building it costs seconds). Two halves drawn in a row may pair up into one character, or not.
 */
export const anyChar: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 0x7f }) },
    { weight: 3, arbitrary: fc.integer({ min: 0x80, max: 0xffff }) },
    { weight: 2, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }) },
    { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }) },
  )
  .map(
    (cp) => String.fromCodePoint(cp),
    (c) => {
      if (typeof c !== 'string' || [...c].length !== 1) throw new Error('not one code point');
      return c.codePointAt(0) as number;
    },
  );
