// contacts-cli: streams a Kore.ai contact list from contacts-gateway. See client/cli.h.
#include "client/cli.h"

int main(int argc, char** argv) { return contacts::client::CliMain(argc, argv); }
