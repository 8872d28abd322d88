package spanprocessor

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrorCondition is a set of conditions under which the error trigger
// finds a span anomalous. Combine them with |.
type ErrorCondition uint8

const (
	// ErrorStatus: the span's status is Error. Reason "error".
	ErrorStatus ErrorCondition = 1 << iota
	// ExceptionEvent: the span recorded an "exception" event
	// (span.RecordError). Reason "exception".
	ExceptionEvent
	// HTTPServerError: a server span whose http.response.status_code (or
	// the older http.status_code) is 500 or more. Reason "http.server_error".
	HTTPServerError
	// GRPCError: a span whose rpc.grpc.status_code is one of the server
	// error codes (see [WithGRPCErrorCodes]). Reason "grpc.error".
	GRPCError

	// DefaultErrorConditions is every condition.
	DefaultErrorConditions = ErrorStatus | ExceptionEvent | HTTPServerError | GRPCError
)

// Reasons given by the error conditions other than ErrorStatus.
const (
	ReasonException       = "exception"
	ReasonHTTPServerError = "http.server_error"
	ReasonGRPCError       = "grpc.error"
)

// DefaultGRPCErrorCodes are the gRPC status codes that count as server
// errors: Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable
// and DataLoss, the codes OpenTelemetry's semantic conventions mark as
// errors for server spans.
var DefaultGRPCErrorCodes = []uint32{2, 4, 12, 13, 14, 15}

const (
	keyHTTPStatus    = attribute.Key("http.response.status_code")
	keyHTTPStatusOld = attribute.Key("http.status_code")
	keyGRPCStatus    = attribute.Key("rpc.grpc.status_code")
	exceptionEvent   = "exception"
)

// WithErrorConditions sets what the error trigger treats as an error; the
// default is [DefaultErrorConditions]. 0 turns the error trigger off.
func WithErrorConditions(c ErrorCondition) Option {
	return optionFunc(func(cfg config) config {
		cfg.errorConds = c
		return cfg
	})
}

// WithErrorTrigger turns the error trigger on (with the default
// conditions) or off. It is on by default.
func WithErrorTrigger(enabled bool) Option {
	if enabled {
		return WithErrorConditions(DefaultErrorConditions)
	}
	return WithErrorConditions(0)
}

// WithGRPCErrorCodes sets the gRPC status codes that the GRPCError
// condition treats as errors; the default is [DefaultGRPCErrorCodes].
func WithGRPCErrorCodes(codes ...uint32) Option {
	return optionFunc(func(cfg config) config {
		var set uint32
		for _, c := range codes {
			if c < 32 {
				set |= 1 << c
			}
		}
		cfg.grpcCodes = set
		return cfg
	})
}

func codeSet(codes []uint32) uint32 {
	var set uint32
	for _, c := range codes {
		set |= 1 << c
	}
	return set
}

// classifyError checks the error conditions, cheapest first.
func (p *Processor) classifyError(s sdktrace.ReadOnlySpan) (string, bool) {
	conds := p.cfg.errorConds
	if conds&ErrorStatus != 0 && s.Status().Code == codes.Error {
		return ReasonError, true
	}
	if conds&(HTTPServerError|GRPCError) != 0 {
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case keyHTTPStatus, keyHTTPStatusOld:
				if conds&HTTPServerError != 0 && s.SpanKind() == trace.SpanKindServer && kv.Value.AsInt64() >= 500 {
					return ReasonHTTPServerError, true
				}
			case keyGRPCStatus:
				if c := kv.Value.AsInt64(); conds&GRPCError != 0 && c >= 0 && c < 32 && p.cfg.grpcCodes&(1<<c) != 0 {
					return ReasonGRPCError, true
				}
			}
		}
	}
	if conds&ExceptionEvent != 0 {
		for _, ev := range s.Events() {
			if ev.Name == exceptionEvent {
				return ReasonException, true
			}
		}
	}
	return "", false
}
