fn main() {
    for crd in stagegate::resources::crds() {
        print!("{}", stagegate::resources::crd_yaml(&crd));
    }
}
