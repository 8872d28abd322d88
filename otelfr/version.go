package otelfr

// Version is the version of this module, reported as the instrumentation
// scope version of the spans it emits.
const Version = "0.1.0"
