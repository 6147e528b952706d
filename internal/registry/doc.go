// Package registry is SQIN's registry of identity attributes (RAIG): the
// people an official source (RAMQ) vouches for, their attributes and the
// rules that check them.
//
// This file set holds the pieces that need no storage: health-insurance
// numbers (NAM) — computing and checking them against a person's name,
// birth date and sex — name normalisation, and a deterministic generator of
// clearly fictitious people for demos, tests and benchmarks.
package registry
