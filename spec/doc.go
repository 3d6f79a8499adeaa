// Package spec is Troupe's YAML language: the document kinds (Agent, Team, Tool,
// Knowledge, Model), how files are parsed and decoded, environment interpolation,
// validation across the whole folder, and the compiler-style diagnostics every
// surface (CLI, API, console) shows.
//
// Decoding walks yaml.Node trees instead of relying on yaml.v3's strict mode:
// strict mode reports unknown keys without columns and with Go type names, and a
// custom UnmarshalYAML silently turns strictness off. Walking the nodes gives every
// problem a file, line, column and object path.
//
// Loading happens in four passes: parse each file into nodes, decode each document
// while checking its shape (unknown keys, wrong types, bad enums, missing fields),
// apply defaults in code, then validate each document and the references between
// documents. All problems are collected; nothing stops at the first one.
//
// The package knows nothing of the engine that runs the specs.
package spec
