import './base.css';
import './live.css';
import './monitor.css';
