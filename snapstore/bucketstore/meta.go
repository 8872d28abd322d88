package bucketstore

import (
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// resourceOf picks the attributes of r that a snapstore.Resource holds.
func resourceOf(r *resource.Resource) snapstore.Resource {
	var out snapstore.Resource
	for _, kv := range r.Attributes() {
		v := kv.Value.String()
		switch kv.Key {
		case semconv.ServiceNameKey:
			out.ServiceName = v
		case semconv.ServiceNamespaceKey:
			out.ServiceNamespace = v
		case semconv.ServiceVersionKey:
			out.ServiceVersion = v
		case semconv.ServiceInstanceIDKey:
			out.ServiceInstanceID = v
		case semconv.HostNameKey:
			out.HostName = v
		case semconv.K8SPodNameKey:
			out.K8sPodName = v
		case semconv.K8SNamespaceNameKey:
			out.K8sNamespaceName = v
		}
	}
	return out
}
