"""The gRPC API's generated code, one sub-package per version of
``proto/test_coordinator/<version>/``; made by ``scripts/gen-proto.sh``, never edited."""
