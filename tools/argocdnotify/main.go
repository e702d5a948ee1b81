// Command argocdnotify is Argo CD's notifications controller, reduced to
// what the dora receiver's tests need: the notifications engine
// (github.com/argoproj/notifications-engine, the library Argo CD's
// argocd-notifications controller is built on) watching Application objects
// on a real API server, reading argocd-notifications-cm and
// argocd-notifications-secret, evaluating the triggers and sending the
// rendered templates with the engine's webhook service.
//
// It is wired the way Argo CD v3.5.1 wires it
// (notification_controller/controller/controller.go and
// util/notification/settings/settings.go): the same ConfigMap and Secret
// names, an Application informer on the controller's namespace, the
// template and trigger variables `app` and `context`, the `time` and
// `strings` expression helpers, and the check that skips an Application
// whose sync status is older than its last operation. Argo CD's own module
// cannot be used here (its gitops-engine dependency does not resolve from
// the module proxy), so those few functions are copied below; what renders
// the templates, evaluates the triggers, records what was sent on the
// Application and posts the webhooks is the engine itself.
//
// It is a separate module so that the engine's dependencies (an older
// client-go, the clients of every notification service) stay out of the
// receiver's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/argoproj/notifications-engine/pkg/api"
	"github.com/argoproj/notifications-engine/pkg/controller"
	"github.com/argoproj/notifications-engine/pkg/services"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

var applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

const (
	configMapName = "argocd-notifications-cm"
	secretName    = "argocd-notifications-secret"
	resyncPeriod  = time.Minute
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "argocd", "namespace of the Applications, the ConfigMap and the Secret")
	flag.Parse()
	log.SetLevel(log.DebugLevel)
	if err := run(*kubeconfig, *namespace); err != nil {
		log.Fatal(err)
	}
}

func run(kubeconfig, namespace string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	k8s, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	appClient := dyn.Resource(applications)
	appInformer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			return appClient.Namespace(namespace).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			return appClient.Namespace(namespace).Watch(ctx, o)
		},
	}, &unstructured.Unstructured{}, resyncPeriod, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	secretInformer := namedInformer(k8s, namespace, "secrets", secretName, &corev1.Secret{})
	cmInformer := namedInformer(k8s, namespace, "configmaps", configMapName, &corev1.ConfigMap{})

	factory := api.NewFactory(api.Settings{
		ConfigMapName: configMapName,
		SecretName:    secretName,
		InitGetVars:   initGetVars,
	}, namespace, secretInformer, cmInformer)
	ctrl := controller.NewController(appClient, appInformer, factory,
		controller.WithSkipProcessing(func(obj metav1.Object) (bool, string) {
			app, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return false, ""
			}
			return !isAppSyncStatusRefreshed(app), "sync status out of date"
		}),
		controller.WithEventCallback(func(s controller.NotificationEventSequence) {
			for _, d := range s.Delivered {
				log.WithField("app", s.Key).Infof("notification sent: trigger %s to %s (already notified: %v)", d.Trigger, d.Destination, d.AlreadyNotified)
			}
			for _, e := range s.Errors {
				log.WithField("app", s.Key).Errorf("notification failed: %v", e)
			}
		}),
	)

	go appInformer.Run(ctx.Done())
	go secretInformer.Run(ctx.Done())
	go cmInformer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), appInformer.HasSynced, secretInformer.HasSynced, cmInformer.HasSynced) {
		return errors.New("timed out waiting for caches to sync")
	}
	log.Info("argocdnotify: caches synced, controller running")
	ctrl.Run(1, ctx.Done())
	return nil
}

// namedInformer watches the one object called name, as Argo CD's
// k8s.NewSecretInformer and NewConfigMapInformer do.
func namedInformer(k8s kubernetes.Interface, namespace, resource, name string, obj runtime.Object) cache.SharedIndexInformer {
	lw := cache.NewListWatchFromClient(k8s.CoreV1().RESTClient(), resource, namespace, fields.OneTermEqualSelector("metadata.name", name))
	return cache.NewSharedIndexInformer(lw, obj, resyncPeriod, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// initGetVars is Argo CD's settings.initGetVars: the variables of the
// templates and triggers are the Application as `app` and the ConfigMap's
// `context` entry as `context`, with the expression helpers
// (util/notification/expression.Spawn). The AppProject and the `repo`
// helper need Argo CD's repo server; the documented templates use neither.
func initGetVars(_ *api.Config, configMap *corev1.ConfigMap, _ *corev1.Secret) (api.GetVars, error) {
	context := map[string]string{}
	if raw, ok := configMap.Data["context"]; ok {
		if err := yaml.Unmarshal([]byte(raw), &context); err != nil {
			return nil, err
		}
	}
	return func(obj map[string]any, dest services.Destination) map[string]any {
		return map[string]any{
			"app":     obj,
			"context": context,
			"time":    timeExprs(),
			"strings": stringsExprs(),
		}
	}, nil
}

// timeExprs is Argo CD's util/notification/expression/time.NewExprs.
func timeExprs() map[string]any {
	return map[string]any{
		"Parse": func(timestamp string) time.Time {
			res, err := time.Parse(time.RFC3339, timestamp)
			if err != nil {
				panic(err)
			}
			return res
		},
		"Now":         time.Now,
		"Nanosecond":  time.Nanosecond,
		"Microsecond": time.Microsecond,
		"Millisecond": time.Millisecond,
		"Second":      time.Second,
		"Minute":      time.Minute,
		"Hour":        time.Hour,
		"Layout":      time.Layout,
		"ANSIC":       time.ANSIC,
		"UnixDate":    time.UnixDate,
		"RubyDate":    time.RubyDate,
		"RFC822":      time.RFC822,
		"RFC822Z":     time.RFC822Z,
		"RFC850":      time.RFC850,
		"RFC1123":     time.RFC1123,
		"RFC1123Z":    time.RFC1123Z,
		"RFC3339":     time.RFC3339,
		"RFC3339Nano": time.RFC3339Nano,
		"Kitchen":     time.Kitchen,
		"Stamp":       time.Stamp,
		"StampMilli":  time.StampMilli,
		"StampMicro":  time.StampMicro,
		"StampNano":   time.StampNano,
	}
}

// stringsExprs is Argo CD's util/notification/expression/strings.NewExprs.
func stringsExprs() map[string]any {
	return map[string]any{
		"ReplaceAll": strings.ReplaceAll,
		"ToUpper":    strings.ToUpper,
		"ToLower":    strings.ToLower,
	}
}

// isAppSyncStatusRefreshed is Argo CD's: after an operation completed, the
// Application is processed only once Argo CD has reconciled it again, so
// that a notification sees the sync status that the operation produced.
func isAppSyncStatusRefreshed(app *unstructured.Unstructured) bool {
	phase, ok, err := unstructured.NestedString(app.Object, "status", "operationState", "phase")
	if !ok || err != nil {
		return true
	}
	switch phase {
	case "Failed", "Error", "Succeeded":
		raw, ok, err := unstructured.NestedString(app.Object, "status", "operationState", "finishedAt")
		if !ok || err != nil {
			return false
		}
		finishedAt, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return false
		}
		var reconciledAt, observedAt time.Time
		if s, ok, _ := unstructured.NestedString(app.Object, "status", "reconciledAt"); ok {
			reconciledAt, _ = time.Parse(time.RFC3339, s)
		}
		if s, ok, _ := unstructured.NestedString(app.Object, "status", "observedAt"); ok {
			observedAt, _ = time.Parse(time.RFC3339, s)
		}
		return !(finishedAt.After(reconciledAt) && finishedAt.After(observedAt))
	}
	return true
}
