// Package rpccode reads gRPC status codes as OpenTelemetry's semantic
// conventions put them on spans, for the span processor's trigger and the
// analysis's error summary.
package rpccode

// names are the codes' names as package google.golang.org/grpc/codes
// spells them, by code.
var names = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
	"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
	"FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
	"Internal", "Unavailable", "DataLoss", "Unauthenticated",
}

// Name returns Go's name of code c ("Unavailable" for 14), and whether c
// is a code gRPC defines.
func Name(c int64) (string, bool) {
	if c < 0 || c >= int64(len(names)) {
		return "", false
	}
	return names[c], true
}

// Parse returns the gRPC status code whose canonical name is name, as the
// semantic conventions put it in rpc.response.status_code for gRPC (and as
// otelgrpc sets it): "UNAVAILABLE" is 14. A value of another RPC system (a
// JSON-RPC number, say) matches none. It does not allocate: the span
// processor calls it on the hot path.
func Parse(name string) (uint32, bool) {
	switch name {
	case "OK":
		return 0, true
	case "CANCELLED":
		return 1, true
	case "UNKNOWN":
		return 2, true
	case "INVALID_ARGUMENT":
		return 3, true
	case "DEADLINE_EXCEEDED":
		return 4, true
	case "NOT_FOUND":
		return 5, true
	case "ALREADY_EXISTS":
		return 6, true
	case "PERMISSION_DENIED":
		return 7, true
	case "RESOURCE_EXHAUSTED":
		return 8, true
	case "FAILED_PRECONDITION":
		return 9, true
	case "ABORTED":
		return 10, true
	case "OUT_OF_RANGE":
		return 11, true
	case "UNIMPLEMENTED":
		return 12, true
	case "INTERNAL":
		return 13, true
	case "UNAVAILABLE":
		return 14, true
	case "DATA_LOSS":
		return 15, true
	case "UNAUTHENTICATED":
		return 16, true
	}
	return 0, false
}
