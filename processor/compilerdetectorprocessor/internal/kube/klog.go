package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"k8s.io/klog/v2"
)

// routeKlog sends client-go's own logging (klog: reflector warnings such as a watch that failed and is retried,
// client-side throttling) to the collector's logger instead of klog's default, plain text on stderr. klog's logger
// is process-wide; with several compiler_detector instances the last one started wins, which only changes the
// component fields on those lines.
func routeKlog(logger *zap.Logger) {
	klog.SetLogger(zapr.NewLogger(logger.Named("client-go")))
}
