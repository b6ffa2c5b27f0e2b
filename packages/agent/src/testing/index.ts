export { startTestModelServer, type ModelBehavior, type ModelRequest, type TestModelServer } from './openai-server'
