mod kube_api;
