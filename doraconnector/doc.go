// Package doraconnector is the dora connector: it takes the spans of any
// traces pipeline and hands them, in-process, to the dora receiver its
// receiver setting names, which counts their deployments into its DORA
// metrics exactly as it counts spans sent to it over OTLP. One engine, one
// state, however the spans arrive.
package doraconnector
