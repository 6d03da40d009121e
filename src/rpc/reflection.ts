/**
 * grpc.reflection.v1.ServerReflection, from the generated descriptors, so that `buf curl` and
 * grpcurl can call the service without the .proto files. Each answer carries the requested
 * file and its transitive imports.
 */
import { createRegistry, type DescFile, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import type {
  ServerReflection,
  ServerReflectionRequest,
  ServerReflectionResponse,
} from '../gen/grpc/reflection/v1/reflection_pb.js';

type Answer = ServerReflectionResponse['messageResponse'];

function withImports(file: DescFile): Uint8Array[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return [...seen.values()].map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
}

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

export function reflectionService(
  files: readonly DescFile[],
  services: readonly string[],
): ServiceImpl<typeof ServerReflection> {
  const registry = createRegistry(...files);
  const byName = new Map<string, DescFile>();
  const collect = (f: DescFile) => {
    if (byName.has(f.name)) return;
    byName.set(f.name, f);
    f.dependencies.forEach(collect);
  };
  files.forEach(collect);

  const fileAnswer = (file: DescFile | undefined, what: string): Answer =>
    file
      ? { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withImports(file) } as never }
      : { case: 'errorResponse', value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } as never };

  const answer = (req: ServerReflectionRequest): Answer => {
    const r = req.messageRequest;
    switch (r.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: services.map((name) => ({ name })) } as never };
      case 'fileByFilename':
        return fileAnswer(byName.get(r.value.replace(/^\//, '').replace(/\.proto$/, '')), `file ${r.value}`);
      case 'fileContainingSymbol': {
        // A method is named Service.Method; look its service up instead.
        const desc = registry.get(r.value) ?? registry.get(r.value.replace(/\.[^.]+$/, ''));
        return fileAnswer(
          desc?.kind === 'service' || desc?.kind === 'message' || desc?.kind === 'enum' || desc?.kind === 'extension'
            ? desc.file
            : undefined,
          `symbol ${r.value}`,
        );
      }
      case 'fileContainingExtension':
      case 'allExtensionNumbersOfType':
        return {
          case: 'errorResponse',
          value: { errorCode: UNIMPLEMENTED, errorMessage: 'extensions are not served' } as never,
        };
      default:
        return { case: 'errorResponse', value: { errorCode: 3, errorMessage: 'empty request' } as never };
    }
  };

  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        // Plain fields, not the message itself: the same implementation serves v1alpha, whose
        // messages have other type names.
        yield {
          validHost: req.host,
          originalRequest: { host: req.host, messageRequest: req.messageRequest },
          messageResponse: answer(req),
        };
      }
    },
  };
}
