// Small static programs for the real-node test tier (scripts/kube-node.sh builds them with
// CGO off and puts each into an image of its own): the pod sandbox's pause process and the
// smoke test's network, DNS, storage and API probe. Standard library only: nothing to download.
module weir.dev/kube-node-tools

go 1.22
