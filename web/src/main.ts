import "./styles.css";
import { start } from "./app.js";

const root = document.getElementById("app");
if (root) start(root);
