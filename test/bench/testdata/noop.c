/* The exec target of the load generator: built static, so an exec costs the
 * kernel's exec path and nothing of the dynamic loader. */
int main(void) { return 0; }
