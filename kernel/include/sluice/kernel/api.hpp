// The REST API (Sesam's paths under /api), served by Poco's HTTPServer.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>

namespace sluice::kernel {

class Node;

// A factory routing every request to the node's API handlers.
Poco::Net::HTTPRequestHandlerFactory::Ptr make_api_factory(Node& node);

}  // namespace sluice::kernel
